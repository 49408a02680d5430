"""The vehicle fleet simulator. It imports only carlink.protocol: what a real car could not do over MQTT,
the simulator may not do either."""

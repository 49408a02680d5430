"""The cloud's side of MQTT: the link to the broker, uplink handling, broker credentials and ACLs, and the
embedded broker of the default set-up."""

"""Privacy and consent: policy versions, consents, country contacts, export, erasure (PRV-1..5)."""

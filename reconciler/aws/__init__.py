"""Lightsail and the other AWS services on the wire: clients, strict decoding, sessions, pacing."""

"""lightsail-reconciler: declarative management of AWS Lightsail SSH key pairs."""

__version__ = "0.1.0"

"""nexusctl: the integration service of the NEXUS platform."""

__version__ = "0.1.0"

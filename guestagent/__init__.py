"""guestagent: an in-guest agent that runs OpenStack Heat software deployments."""

__version__ = "0.1.0"

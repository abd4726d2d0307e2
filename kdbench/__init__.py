"""kdbench: what is lost in knowledge distillation, and what it buys at deployment."""

__version__ = "0.1.0"

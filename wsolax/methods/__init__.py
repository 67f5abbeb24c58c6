"""WSOL methods that act on feature maps inside the backbone (inserted at named stages)."""

"""WSOL methods, one per module or package, each defining its `METHOD` (wsolax.methods.api): layers
inserted at named backbone stages, heads, batch transforms and loss terms."""

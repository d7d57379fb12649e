"""The builder agent that runs inside the ACI container group."""

"""The local environment: control-plane binaries, a control plane, `kaib dev up/down`."""

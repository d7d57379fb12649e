"""kopf handlers, the build steps, cleanup and orphan sweeping."""

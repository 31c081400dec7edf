"""Programs and rules of the pod's boot."""

"""Builds, checks and smoke-tests the SteadyDancer ComfyUI image for RunPod pods and any CUDA host."""

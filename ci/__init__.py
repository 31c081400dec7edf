"""Builds, checks and smoke-tests the SteadyDancer ComfyUI image for RunPod and any CUDA host."""

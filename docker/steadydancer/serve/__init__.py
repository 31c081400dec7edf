"""What runs while the image serves generation: the RunPod serverless worker."""

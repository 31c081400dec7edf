"""The image's layers, cheapest to change last: each extends the container before it."""

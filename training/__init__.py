"""Training our own SimCLR and supervised CIFAR ResNets (a face above `core` and `models`)."""

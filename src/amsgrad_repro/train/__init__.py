"""Training engine for the neural tasks (paper Figure 2 and the report's VAE).

``api`` is the interface a task kind implements, ``kinds`` holds the classifier and VAE
kinds, ``models`` the architectures, and ``engine`` the loop that runs any of them with
on-device data, seeded batch order, per-epoch resumable checkpoints and divergence handling.
"""

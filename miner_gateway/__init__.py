"""Miner gateway: a bittensor axon that turns the subnet's synapses into streaming gRPC calls."""

"""Operator commands (`vidaio-mesh`). The only package allowed to import several services' cores."""

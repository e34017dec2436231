"""Teach it your hand: a user's own samples, and the personal models made from them."""

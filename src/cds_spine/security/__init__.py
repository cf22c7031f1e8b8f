"""Trusting the EHR: JWT verification against trusted clients, and the start-up policy around it."""

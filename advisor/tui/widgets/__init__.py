"""Widgets the screens share: question fields and the loss chart."""

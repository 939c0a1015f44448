"""Task modules, one per area (routing, deliveries, reminders...), registered by name."""

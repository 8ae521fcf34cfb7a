"""The app's shared pieces: sidebar choices and cached analysis (state), chart builders, findings."""

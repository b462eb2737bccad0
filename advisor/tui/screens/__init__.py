"""The app's screens, one module each; imported lazily so the first screen paints fast."""

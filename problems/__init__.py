"""Instance generators and loaders (installed as ``permsolve.problems``)."""

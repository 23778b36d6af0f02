"""Tasks that turn note embeddings into numbers with definitions and intervals."""

"""Running Lorebot as a long-lived process: metrics, the health server and graceful shutdown."""

"""The stages of the chain. Algorithms are plain functions; @task wrappers stay thin."""

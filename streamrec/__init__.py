"""streamrec: a streaming, continually learning recommender on Kafka."""
__version__ = "0.1.0"

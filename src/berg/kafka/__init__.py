"""Kafka I/O on kafka-python: raw-bytes consumer loop, acks=all producer, dead-letter publisher, topics.

Decoding happens in Berg's code (:mod:`berg.kafka.decoding`), never in a
kafka-python deserializer: a deserializer that throws makes ``poll()`` return
the same record forever.
"""

"""The local stack: Kafka (KRaft), Prometheus and Alertmanager as supervised processes on loopback."""

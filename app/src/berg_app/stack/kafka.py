"""Apache Kafka for the local stack: jars from Maven Central, KRaft config, storage format, command line."""

from __future__ import annotations

import base64
import shutil
import subprocess
import uuid
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path

from berg_app.stack.layout import StateLayout
from berg_app.stack.settings import StackSettings

__all__ = [
    "KafkaRuntimeError",
    "broker_command",
    "ensure_storage_formatted",
    "fetch_kafka_jars",
    "jars_present",
    "kafka_libs",
    "write_broker_config",
]

_COMPLETE_MARKER = ".complete"
_MAIN_JAR_GLOB = "kafka_2.13-*.jar"


class KafkaRuntimeError(Exception):
    """Kafka could not be prepared; the message says what to do."""


def kafka_libs(settings: StackSettings, layout: StateLayout) -> Path:
    """The folder of Kafka jars to put on the classpath: ``$KAFKA_HOME/libs`` or the Maven cache."""
    if settings.kafka_home is not None:
        return settings.kafka_home / "libs"
    return layout.kafka_libs(settings.kafka_version)


def jars_present(libs: Path) -> bool:
    """Whether ``libs`` holds a complete Kafka classpath."""
    return libs.is_dir() and any(libs.glob(_MAIN_JAR_GLOB))


def fetch_kafka_jars(settings: StackSettings, layout: StateLayout) -> Path:
    """Make sure Kafka's jars are on disk, fetching them with Maven when they are not.

    Returns:
        The folder of jars.

    Raises:
        KafkaRuntimeError: ``KAFKA_HOME`` has no jars, Maven is missing, or the fetch failed.
    """
    libs = kafka_libs(settings, layout)
    if settings.kafka_home is not None:
        if not jars_present(libs):
            raise KafkaRuntimeError(f"KAFKA_HOME={settings.kafka_home} has no {_MAIN_JAR_GLOB} in libs/; unset it")
        return libs
    if (libs / _COMPLETE_MARKER).exists() and jars_present(libs):
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaRuntimeError(
            "Maven is needed to fetch Kafka's jars: apt-get install maven (or set KAFKA_HOME to a Kafka distribution)"
        )
    work = libs.parent
    work.mkdir(parents=True, exist_ok=True)
    pom = work / "pom.xml"
    pom.write_bytes(resources.files("berg_app.stack").joinpath("resources/kafka-runtime.pom.xml").read_bytes())
    staging = work / "libs.partial"
    shutil.rmtree(staging, ignore_errors=True)
    # Maven only warns on a checksum mismatch by default; these jars become a running broker's classpath.
    command = [
        mvn,
        "--batch-mode",
        "--quiet",
        "--strict-checksums",
        "--file",
        str(pom),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={staging}",
        f"-Dkafka.version={settings.kafka_version}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
    if result.returncode != 0 or not jars_present(staging):
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise KafkaRuntimeError(
            f"fetching Kafka {settings.kafka_version} from Maven Central failed (exit {result.returncode}):\n{tail}\n"
            "Check that Maven Central is reachable, or set KAFKA_HOME to a Kafka distribution."
        )
    (staging / _COMPLETE_MARKER).touch()
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    return libs


def write_broker_config(
    settings: StackSettings, layout: StateLayout, overrides: Mapping[str, str] | None = None
) -> Path:
    """Write a single-node KRaft ``server.properties`` (broker and controller in one process).

    Args:
        overrides: properties that replace or add to the single-node ones (a test's broker
            with a SASL listener and an authorizer); ``berg up`` passes none: the local stack
            listens in plaintext on loopback.
    """
    host, ports = settings.host, settings.ports
    properties = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"{host}:{ports.kafka_controller}",
        "listeners": f"PLAINTEXT://{host}:{ports.kafka},CONTROLLER://{host}:{ports.kafka_controller}",
        "advertised.listeners": f"PLAINTEXT://{host}:{ports.kafka}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(layout.kafka_data),
        "num.partitions": str(settings.topic_partitions),
        # One node: internal topics cannot have more replicas than that.
        "offsets.topic.replication.factor": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        # Topics are created by `berg up` with their partition counts; a typo'd
        # topic name in a producer must fail, not create a new topic.
        "auto.create.topics.enable": "false",
        # A single consumer joining should not wait 3 s for others that never come.
        "group.initial.rebalance.delay.ms": "0",
        **(overrides or {}),
    }
    path = layout.config / "kafka-server.properties"
    path.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))
    return path


def _log4j_config(layout: StateLayout) -> Path:
    path = layout.config / "kafka-log4j2.properties"
    path.write_bytes(resources.files("berg_app.stack").joinpath("resources/log4j2.properties").read_bytes())
    return path


def _java() -> str:
    java = shutil.which("java")
    if java is None:
        raise KafkaRuntimeError("Java 17 or newer is needed for Kafka: apt-get install openjdk-17-jre-headless")
    return java


def _jvm_command(settings: StackSettings, layout: StateLayout, libs: Path, main_class: str) -> list[str]:
    return [
        _java(),
        f"-Xms{settings.kafka_heap}",
        f"-Xmx{settings.kafka_heap}",
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={_log4j_config(layout)}",
        "-cp",
        f"{libs}/*",
        main_class,
    ]


def ensure_storage_formatted(
    settings: StackSettings, layout: StateLayout, libs: Path, config: Path, *, add_scram: Sequence[str] = ()
) -> bool:
    """Format KRaft storage on first start; later starts keep the data.

    Args:
        add_scram: SCRAM credentials to write into the new cluster's metadata, in the storage
            tool's ``--add-scram`` form (``SCRAM-SHA-512=[name=admin,password=...]``): the users a
            SASL listener knows before any client can connect to create more.

    Returns:
        True when this call formatted the storage.

    Raises:
        KafkaRuntimeError: the storage tool failed.
    """
    if (layout.kafka_data / "meta.properties").exists():
        return False
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    command = [
        *_jvm_command(settings, layout, libs, "kafka.tools.StorageTool"),
        "format",
        # One argument with '=': a urlsafe base64 id may start with '-', which
        # the tool would otherwise read as an option.
        f"--cluster-id={cluster_id}",
        f"--config={config}",
        "--standalone",
        *(f"--add-scram={credential}" for credential in add_scram),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-10:])
        raise KafkaRuntimeError(f"formatting Kafka storage in {layout.kafka_data} failed:\n{tail}")
    return True


def broker_command(settings: StackSettings, layout: StateLayout, libs: Path, config: Path) -> list[str]:
    """The command line that runs the broker in the foreground (the supervisor daemonizes it)."""
    return [*_jvm_command(settings, layout, libs, "kafka.Kafka"), str(config)]

"""How long a checkpoint of the default model takes to reach S3-compatible storage and back.

Starts an S3-compatible server on loopback (moto, a dev dependency), writes the training state
of the default experiment's model (model, AdamW moments, sampler, policy: what a trial saves at
every report) with popmix's own checkpoint writer, and times its upload to ``s3://`` and its
download through pyarrow's filesystem (what Ray Tune uses for ``--storage s3://...``), over
``--repeats`` round trips. Loopback measures popmix's and pyarrow's overhead, not a network.

    python benchmarks/storage_roundtrip.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

    import boto3
    import pyarrow.fs as pafs
    from moto.server import ThreadedMotoServer

    from popmix.config import load_experiment
    from popmix.data import load_experiment_domains
    from popmix.policies import build_policy
    from popmix.train.loop import Trainer

    exp = load_experiment(None)
    domains = load_experiment_domains(exp)
    policy = build_policy("stratified", domains.sizes, exp.train.steps)
    trainer = Trainer(domains, policy, exp.model, exp.train)
    trainer.train(2)
    local = Path(tempfile.mkdtemp(prefix="popmix-s3-")) / "state.pt"
    trainer.save(local)
    size = local.stat().st_size

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="runs")
        fs, root = pafs.FileSystem.from_uri(f"s3://runs/bench?endpoint_override={endpoint}")
        up, down = [], []
        for i in range(args.repeats):
            start = time.perf_counter()
            pafs.copy_files(str(local), f"{root}/{i}/state.pt", destination_filesystem=fs)
            up.append(time.perf_counter() - start)
            start = time.perf_counter()
            back = local.with_name(f"back-{i}.pt")
            pafs.copy_files(f"{root}/{i}/state.pt", str(back), source_filesystem=fs)
            down.append(time.perf_counter() - start)
            assert back.read_bytes() == local.read_bytes()
    finally:
        server.stop()
    print(
        f"checkpoint of the default model ({exp.model.n_layer} layers, width "
        f"{exp.model.d_model}): {size / 1e6:.2f} MB"
    )
    print(
        f"upload   median {statistics.median(up) * 1e3:.0f} ms  (min {min(up) * 1e3:.0f}, "
        f"max {max(up) * 1e3:.0f}) over {args.repeats}"
    )
    print(
        f"download median {statistics.median(down) * 1e3:.0f} ms  (min {min(down) * 1e3:.0f}, "
        f"max {max(down) * 1e3:.0f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The S3 backend's two clients (requests, and large uploads with longer bounds) share one boto3 session:
each session parses botocore's endpoint and S3 models again (~12 MiB of Python objects), which was a
twelfth of the S3 backup's peak RSS (issue 15). Making a client does not connect: no server needed."""

from __future__ import annotations

import gc
import tracemalloc

from kubekeep.repo.storage import S3Config, S3Storage


def test_the_transfer_client_reuses_the_storages_session() -> None:
    config = S3Config(bucket="bucket", prefix="repo/", endpoint_url="http://127.0.0.1:9", access_key="a",
                      secret_key="b", region="us-east-1")
    storage = S3Storage(config)
    try:
        gc.collect()
        tracemalloc.start()
        try:
            transfer = storage._transfer_client(config.transfer_size)
            held, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        # still a client of its own, with the bounds of large uploads
        assert transfer is not storage._transfer_client(config.transfer_size - 1)
        assert getattr(transfer.meta.config, "read_timeout") == config.transfer_read_timeout  # noqa: B009
        assert getattr(storage._client.meta.config, "read_timeout") == config.read_timeout  # noqa: B009
        # a client of a new session held ~12 MiB here; one of the same session ~1 MiB
        assert held < 4 * 2**20, f"the transfer client holds {held / 2**20:.1f} MiB"
    finally:
        storage.close()

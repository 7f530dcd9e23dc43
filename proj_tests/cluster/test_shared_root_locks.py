"""A worker refuses a shared data folder whose file locks would stay on its host.

DuckDB's lock on the warehouse file keeps two writers apart (Dagster's pool is not a strict
mutex), so an NFS share mounted with `nolock` or `local_lock=posix|all` would let two hosts write
at once. The mount tables are built here the way /proc/self/mounts prints them.
"""

from pathlib import Path

import pytest

from proj_cluster import shared_root

ROOT = "/dev/vda1 / ext4 rw,relatime 0 0\n"


def _nfs(point: str, options: str) -> str:
    return f"fileserver:/export/lab {point} nfs4 rw,relatime,vers=4.2,{options},addr=10.0.0.5 0 0\n"


class _Redis(dict):
    def set(self, key, value):
        self[key] = value


@pytest.mark.parametrize("option", ["nolock", "local_lock=all", "local_lock=posix"])
def test_an_nfs_share_whose_locks_stay_on_the_host_is_named(option):
    mounts = ROOT + _nfs("/srv/lab data", f"hard,{option}").replace("lab data", "lab\\040data")
    assert shared_root.host_local_lock_option(Path("/srv/lab data/run"), mounts) == option


def test_a_share_with_server_locks_a_local_disk_and_a_mount_inside_the_share_pass():
    mounts = ROOT + _nfs("/srv/lab", "hard,local_lock=none") + "tmpfs /srv/lab/tmp tmpfs rw 0 0\n"
    assert shared_root.host_local_lock_option(Path("/srv/lab/data"), mounts) is None
    assert shared_root.host_local_lock_option(Path("/home/me/data"), mounts) is None
    nolock_share = ROOT + _nfs("/srv/lab", "nolock") + "tmpfs /srv/lab/tmp tmpfs rw 0 0\n"
    assert shared_root.host_local_lock_option(Path("/srv/lab/tmp/x"), nolock_share) is None
    assert shared_root.host_local_lock_option(Path("/srv/lab/x"), nolock_share) == "nolock"


def test_a_worker_refuses_a_published_folder_on_a_nolock_mount(tmp_path):
    redis = _Redis()
    shared_root.publish(redis, tmp_path)
    shared_root.check(redis, tmp_path, ROOT + _nfs(str(tmp_path), "local_lock=none"))
    with pytest.raises(shared_root.SharedRootError) as refused:
        shared_root.check(redis, tmp_path, ROOT + _nfs(str(tmp_path), "nolock"))
    assert str(refused.value).startswith(
        f"the shared data folder {tmp_path} is on an NFS mount with `nolock`"
    )
    shared_root.check(redis, tmp_path)  # this host's own table: the test folder is local

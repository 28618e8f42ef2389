"""resolve_user: Dockerfile USER values against the image's own /etc/passwd and /etc/group."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.executor import User, UserNotFound, resolve_user


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "app:x:1000:1000:app:/home/app:/bin/sh\n"
        "svc:x:1001:1001::/srv:/bin/false\n")
    (tmp_path / "etc/group").write_text(
        "root:x:0:\nwheel:x:10:app,svc\naudio:x:29:app\napp:x:1000:\nsvc:x:1001:\n")
    return tmp_path


def test_empty_user_is_root(rootfs: Path) -> None:
    assert resolve_user(rootfs, "") == User(0, 0, (), "/root")


def test_name_gives_passwd_ids_home_and_member_groups(rootfs: Path) -> None:
    assert resolve_user(rootfs, "app") == User(1000, 1000, (10, 29), "/home/app")


def test_numeric_uid_found_in_passwd_uses_its_entry(rootfs: Path) -> None:
    assert resolve_user(rootfs, "1001") == User(1001, 1001, (10,), "/srv")


def test_numeric_uid_without_entry_gets_gid_0(rootfs: Path) -> None:
    assert resolve_user(rootfs, "4242") == User(4242, 0, (), None)


def test_explicit_group_by_name_or_number_drops_supplementary_groups(rootfs: Path) -> None:
    assert resolve_user(rootfs, "app:wheel") == User(1000, 10, (), "/home/app")
    assert resolve_user(rootfs, "app:777") == User(1000, 777, (), "/home/app")
    assert resolve_user(rootfs, "5:6") == User(5, 6, (), None)


def test_unknown_user_name_is_a_clear_error(rootfs: Path) -> None:
    with pytest.raises(UserNotFound,
                       match="unable to find user ghost: no matching entries in passwd file"):
        resolve_user(rootfs, "ghost")


def test_unknown_group_name_is_a_clear_error(rootfs: Path) -> None:
    with pytest.raises(UserNotFound,
                       match="unable to find group ghosts: no matching entries in group file"):
        resolve_user(rootfs, "app:ghosts")


def test_image_without_passwd_accepts_only_numbers(tmp_path: Path) -> None:
    assert resolve_user(tmp_path, "0") == User(0, 0, (), None)
    with pytest.raises(UserNotFound):
        resolve_user(tmp_path, "root")


def test_passwd_symlink_is_resolved_inside_the_rootfs(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/real").write_text("someone:x:77:78::/:/bin/sh\n")
    (tmp_path / "etc/passwd").symlink_to("../../../etc/real")  # '..' clamps at the rootfs
    assert resolve_user(tmp_path, "someone") == User(77, 78, (), "/")
    with pytest.raises(UserNotFound):
        resolve_user(tmp_path, "root")  # the host's passwd is never read

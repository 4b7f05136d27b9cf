"""The template is rebuilt exactly when its package list changes."""

from __future__ import annotations

from lab import template


def test_name_follows_the_package_list_not_its_order(tmp_path):
    base = ["systemd", "nginx", "postgresql"]
    name = template.template_name(base)
    assert name.startswith("debian-12-pvelab_12.0-")
    assert name.endswith("_amd64.tar.zst")
    assert template.template_name(list(reversed(base))) == name
    assert template.template_name([*base, "prometheus"]) != name


def test_package_list_ignores_comments_and_blanks(tmp_path):
    listing = tmp_path / "packages.txt"
    listing.write_text("# heading\n\nnginx  # the proxy\n  curl\n")
    assert template.read_packages(listing) == ["nginx", "curl"]


def test_the_shipped_list_carries_the_stack():
    packages = set(template.read_packages())
    assert {"systemd", "openssh-server", "python3", "python3-venv", "sudo", "nginx", "postgresql",
            "prometheus", "prometheus-alertmanager", "prometheus-node-exporter",
            "prometheus-blackbox-exporter", "prometheus-nginx-exporter",
            "prometheus-postgres-exporter"} <= packages

"""lab.schema: PVE API route matching and PVE-exact parameter validation."""

from __future__ import annotations

import re
from typing import Any

import pytest

from lab.schema import (
    KNOWN_FORMATS,
    SCHEMA_PATH,
    UNCHECKED_FORMATS,
    ApiSchema,
    ParameterError,
    compile_perl_regex,
    format_property_string,
    format_size,
    parse_property_string,
    parse_size,
    perl_regex_to_python,
    split_list,
)

CT = "/nodes/pve1/lxc/100/config"
CT_CREATE = "/nodes/pve1/lxc"
NOT_DEFINED = "property is not defined in schema and the schema does not allow additional properties"
MISSING = "property is missing and it is not optional"


@pytest.fixture(scope="module")
def schema() -> ApiSchema:
    return ApiSchema.load()


def validate(schema: ApiSchema, method: str, path: str, params: dict[str, Any], **kw: Any) -> dict:
    route = schema.match(method, path)
    assert route is not None, f"{method} {path} not in schema"
    return schema.validate(route, params, **kw)


def errors(schema: ApiSchema, method: str, path: str, params: dict[str, Any], **kw: Any) -> dict:
    with pytest.raises(ParameterError) as caught:
        validate(schema, method, path, params, **kw)
    assert caught.value.status == 400
    assert caught.value.message == "Parameter verification failed."
    return caught.value.errors


def tree(*templates: str) -> list[dict[str, Any]]:
    """A synthetic schema: each template with a GET method taking no parameters."""
    return [
        {"path": template, "info": {"GET": {"parameters": {"additionalProperties": 0}}}}
        for template in templates
    ]


# -- routes -------------------------------------------------------------------


def test_match_returns_template_path_params_and_method_info(schema: ApiSchema) -> None:
    route = schema.match("PUT", CT)
    assert route is not None
    assert route.template == "/nodes/{node}/lxc/{vmid}/config"
    assert route.method == "PUT"
    assert route.path_params == {"node": "pve1", "vmid": "100"}
    assert "memory" in route.info["parameters"]["properties"]
    assert route.info["protected"] == 1


def test_literal_segment_wins_over_param_segment() -> None:
    api = ApiSchema(tree("/a/{x}", "/a/b"))
    literal = api.match("GET", "/a/b")
    param = api.match("GET", "/a/c")
    assert literal is not None
    assert (literal.template, literal.path_params) == ("/a/b", {})
    assert param is not None
    assert (param.template, param.path_params) == ("/a/{x}", {"x": "c"})


@pytest.mark.parametrize("path", ["/nope", "/nodes/pve1/bogus", "/nodes/pve1/lxc/100/config/extra", "/"])
def test_unknown_path_does_not_match(schema: ApiSchema, path: str) -> None:
    assert schema.match("GET", path) is None


def test_method_not_in_schema_does_not_match(schema: ApiSchema) -> None:
    assert schema.match("DELETE", "/version") is None
    assert schema.match("POST", CT) is None
    assert schema.match("get", "/version") is not None


def test_match_ignores_empty_path_segments_like_pve(schema: ApiSchema) -> None:
    route = schema.match("GET", "//nodes/pve1//lxc/100/config/")
    assert route is not None
    assert route.template == "/nodes/{node}/lxc/{vmid}/config"


def test_every_schema_template_matches_a_path_built_from_it(schema: ApiSchema) -> None:
    routes = schema.routes()
    assert len(routes) > 600
    for template, method in routes:
        names = re.findall(r"\{([^}]+)\}", template)
        path = re.sub(r"\{([^}]+)\}", lambda m: f"v-{m[1]}", template)
        route = schema.match(method, path)
        assert route is not None, (method, template)
        assert route.template == template
        assert route.path_params == {name: f"v-{name}" for name in names}


def test_path_exists_for_any_method(schema: ApiSchema) -> None:
    assert schema.path_exists("/nodes/pve1/lxc/100/status/current")
    assert schema.path_exists(CT_CREATE)
    assert not schema.path_exists("/nodes/pve1/bogus")
    assert ("/nodes/{node}/lxc/{vmid}/config", "PUT") in schema.routes()


def test_load_reads_the_file_once(schema: ApiSchema) -> None:
    assert ApiSchema.load() is schema
    assert ApiSchema.load(SCHEMA_PATH) is schema


# -- refusals -----------------------------------------------------------------


def test_unknown_parameter_is_refused(schema: ApiSchema) -> None:
    assert errors(schema, "PUT", CT, {"bogus": "1"}) == {"bogus": NOT_DEFINED}


def test_parameter_on_a_method_without_parameters_is_refused(schema: ApiSchema) -> None:
    assert errors(schema, "GET", "/version", {"foo": "1"}) == {"foo": NOT_DEFINED}


def test_missing_required_parameter_is_refused(schema: ApiSchema) -> None:
    assert errors(schema, "POST", CT_CREATE, {"vmid": "100"}) == {"ostemplate": MISSING}


@pytest.mark.parametrize(
    ("method", "path", "params", "key", "message"),
    [
        ("PUT", CT, {"memory": "abc"}, "memory", "type check ('integer') failed - got 'abc'"),
        ("PUT", CT, {"cpulimit": "x"}, "cpulimit", "type check ('number') failed - got 'x'"),
        ("PUT", CT, {"onboot": "2"}, "onboot", "type check ('boolean') failed - got '2'"),
        ("PUT", CT, {"memory": "8"}, "memory", "value must have a minimum value of 16"),
        ("PUT", CT, {"cores": "9000"}, "cores", "value must have a maximum value of 8192"),
        ("PUT", CT, {"description": "x" * 8193}, "description", "value may only be 8192 characters long"),
        ("PUT", CT, {"hostname": "a" * 256}, "hostname", "value may only be 255 characters long"),
        (
            "POST",
            CT_CREATE,
            {"ostemplate": "local:vztmpl/d.tar.zst", "vmid": "100", "password": "abc"},
            "password",
            "value must be at least 5 characters long",
        ),
        (
            "PUT",
            CT,
            {"ostype": "windows"},
            "ostype",
            "value 'windows' does not have a value in the enumeration 'debian, devuan, ubuntu, "
            "centos, fedora, opensuse, archlinux, alpine, gentoo, nixos, unmanaged'",
        ),
        (
            "PUT",
            "/nodes/pve1/lxc/100/resize",
            {"disk": "rootfs", "size": "2GB"},
            "size",
            "value does not match the regex pattern",
        ),
        (
            "PUT",
            "/nodes/pve1/lxc/99/config",
            {},
            "vmid",
            "invalid format - value does not look like a valid VM ID",
        ),
        (
            "PUT",
            "/nodes/pve_1/lxc/100/config",
            {},
            "node",
            "invalid format - value does not look like a valid node name",
        ),
        (
            "PUT",
            CT,
            {"hookscript": "/abs"},
            "hookscript",
            "invalid format - unable to parse volume ID '/abs'",
        ),
        ("PUT", CT, {"tags": "web;bad tag!"}, "tags", "invalid format - invalid characters in tag"),
        ("PUT", CT, {"startup": "order=x"}, "startup", "invalid format - unable to parse startup options"),
        ("PUT", CT, {"timezone": "Mars/Base"}, "timezone", "invalid format - invalid time zone 'Mars/Base'"),
        (
            "PUT",
            CT,
            {"hostname": "bad_host"},
            "hostname",
            "invalid format - value does not look like a valid DNS name",
        ),
        (
            "PUT",
            CT,
            {"searchdomain": "example.com bad_domain"},
            "searchdomain",
            "invalid format - value does not look like a valid DNS name",
        ),
        (
            "PUT",
            CT,
            {"nameserver": "10.0.0.1 999.1.1.1"},
            "nameserver",
            "invalid format - value does not look like a valid IP address",
        ),
        ("PUT", CT, {"delete": "memory,9x"}, "delete", "invalid format - invalid configuration ID '9x'"),
        (
            "GET",
            "/nodes/pve1/tasks",
            {"statusfilter": "ok,bogus"},
            "statusfilter",
            "invalid format - invalid status 'bogus'",
        ),
        (
            "GET",
            "/nodes/pve1/storage/local/content",
            {"content": "bogus"},
            "content",
            "invalid format - invalid content type 'bogus'",
        ),
        (
            "POST",
            "/access/users",
            {"userid": "root"},
            "userid",
            "invalid format - value 'root' does not look like a valid user name",
        ),
        ("POST", "/access/users", {"userid": "ab"}, "userid", "invalid format - user name 'ab' is too short"),
        (
            "POST",
            "/access/users",
            {"userid": "bob@pve", "email": "nope"},
            "email",
            "invalid format - value does not look like a valid email address",
        ),
        (
            "PUT",
            "/access/acl",
            {"path": "/", "roles": "PVEAuditor", "tokens": "root@pam"},
            "tokens",
            "invalid format - value 'root@pam' does not look like a valid token ID",
        ),
        ("GET", "/access/domains/x", {}, "realm", "invalid format - value does not look like a valid realm"),
        (
            "POST",
            "/pools",
            {"poolid": "bad pool"},
            "poolid",
            "invalid format - pool name 'bad pool' contains invalid characters",
        ),
        (
            "POST",
            "/access/roles",
            {"roleid": "r1", "privs": "VM.Audit,Bogus.Priv"},
            "privs",
            "invalid format - invalid privilege 'Bogus.Priv'",
        ),
        (
            "POST",
            CT_CREATE,
            {"ostemplate": "local:vztmpl/d.tar.zst", "vmid": "100", "storage": "9bad"},
            "storage",
            "invalid format - storage ID '9bad' contains illegal characters",
        ),
    ],
)
def test_refusal_messages_match_pve(
    schema: ApiSchema, method: str, path: str, params: dict[str, Any], key: str, message: str
) -> None:
    assert errors(schema, method, path, params) == {key: message}


def test_all_errors_are_collected_one_per_parameter(schema: ApiSchema) -> None:
    found = errors(
        schema,
        "POST",
        CT_CREATE,
        {"vmid": "99", "memory": "8", "cores": "x", "bogus": "1", "net0": "name=eth0,ip=bad"},
    )
    assert found == {
        "vmid": "invalid format - value does not look like a valid VM ID",
        "memory": "value must have a minimum value of 16",
        "cores": "type check ('integer') failed - got 'x'",
        "ostemplate": MISSING,
        "net0": "invalid format - format error\n"
        "net0.ip: invalid format - value does not look like a valid ipv4 network configuration",
        "bogus": NOT_DEFINED,
    }


def test_requires_names_the_missing_property(schema: ApiSchema) -> None:
    found = errors(schema, "POST", CT_CREATE, {"vmid": "100", "ostemplate": "local:1", "unique": "1"})
    assert found == {"restore": "missing property - 'unique' requires this property"}


def test_path_param_conflicting_with_a_body_param_is_refused(schema: ApiSchema) -> None:
    expected = {"vmid": "duplicate parameter (already defined in URI) with conflicting values!"}
    assert errors(schema, "PUT", CT, {"vmid": "101"}) == expected
    assert validate(schema, "PUT", CT, {"vmid": "100"})["vmid"] == 100


def test_list_value_for_a_plain_string_is_refused(schema: ApiSchema) -> None:
    assert errors(schema, "PUT", CT, {"hostname": ["a", "b"]}) == {
        "hostname": "type check ('string') failed - got ARRAY"
    }


# -- acceptance and coercion --------------------------------------------------


def test_valid_parameters_come_back_coerced(schema: ApiSchema) -> None:
    params = {
        "memory": "512",
        "cpulimit": "1.5",
        "onboot": "1",
        "protection": "0",
        "hostname": "ct1.example.com",
        "net0": "name=eth0,bridge=vmbr0,ip=dhcp",
        "delete": "swap",
    }
    assert validate(schema, "PUT", CT, params) == {
        "node": "pve1",
        "vmid": 100,
        "memory": 512,
        "cpulimit": 1.5,
        "onboot": 1,
        "protection": 0,
        "hostname": "ct1.example.com",
        "net0": "name=eth0,bridge=vmbr0,ip=dhcp",
        "delete": "swap",
    }


def test_validate_does_not_change_the_callers_dict(schema: ApiSchema) -> None:
    params = {"memory": "512"}
    validate(schema, "PUT", CT, params)
    assert params == {"memory": "512"}


def test_top_level_booleans_take_only_0_and_1_like_pve_check_type(schema: ApiSchema) -> None:
    assert errors(schema, "PUT", CT, {"onboot": "true"}) == {
        "onboot": "type check ('boolean') failed - got 'true'"
    }
    assert validate(schema, "PUT", CT, {"onboot": True})["onboot"] == 1


@pytest.mark.parametrize(("given", "expected"), [("yes", 1), ("On", 1), ("TRUE", 1), ("no", 0), ("off", 0)])
def test_lenient_booleans_follow_parse_boolean(schema: ApiSchema, given: str, expected: int) -> None:
    assert validate(schema, "PUT", CT, {"onboot": given}, lenient_booleans=True)["onboot"] == expected


def test_lenient_booleans_still_refuse_non_booleans(schema: ApiSchema) -> None:
    found = errors(schema, "PUT", CT, {"onboot": "maybe"}, lenient_booleans=True)
    assert found == {"onboot": "type check ('boolean') failed - got 'maybe'"}


def test_repeated_list_parameter_is_joined_like_pve(schema: ApiSchema) -> None:
    assert validate(schema, "PUT", CT, {"delete": ["memory", "swap"]})["delete"] == "memory,swap"


def test_array_parameter_takes_a_single_value_as_a_list(schema: ApiSchema) -> None:
    route = schema.match("POST", "/cluster/notifications/endpoints/sendmail")
    assert route is not None
    result = schema.validate(route, {"name": "mail1", "mailto": "ops@example.com"})
    assert result["mailto"] == ["ops@example.com"]


# -- indexed properties -------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("net0", "name=eth0"),
        ("net31", "name=eth31"),
        ("mp0", "local:8,mp=/data"),
        ("mp255", "local:8,mp=/data"),
        ("unused255", "local:100/vm-100-disk-1.raw"),
        ("dev0", "/dev/null"),
    ],
)
def test_indexed_property_in_range_is_accepted(schema: ApiSchema, key: str, value: str) -> None:
    assert validate(schema, "PUT", CT, {key: value})[key] == value


@pytest.mark.parametrize("key", ["net32", "net99x", "net01", "mp256", "net[n]", "netx"])
def test_indexed_property_out_of_range_is_unknown(schema: ApiSchema, key: str) -> None:
    assert errors(schema, "PUT", CT, {key: "name=eth0"}) == {key: NOT_DEFINED}


def test_index_range_follows_the_description(schema: ApiSchema) -> None:
    qemu = "/nodes/pve1/qemu/100/config"
    assert validate(schema, "PUT", qemu, {"ide3": "none,media=cdrom"})["ide3"] == "none,media=cdrom"
    assert errors(schema, "PUT", qemu, {"ide4": "none"}) == {"ide4": NOT_DEFINED}
    assert errors(schema, "PUT", qemu, {"scsi31": "none"}) == {"scsi31": NOT_DEFINED}


def test_property_format_resolves_indexed_names(schema: ApiSchema) -> None:
    route = schema.match("PUT", CT)
    assert route is not None
    net = schema.property_format(route, "net7")
    assert net is not None
    assert net["ip"]["format"] == "pve-ipv4-config"
    assert schema.property_format(route, "rootfs") is not None
    assert schema.property_format(route, "memory") is None
    assert schema.property_format(route, "net32") is None


# -- property strings ---------------------------------------------------------


def net_error(schema: ApiSchema, value: str) -> str:
    return errors(schema, "PUT", CT, {"net0": value})["net0"]


def test_valid_net0_is_kept_as_the_original_string(schema: ApiSchema) -> None:
    value = "name=eth0,bridge=vmbr0,firewall=1,hwaddr=BC:24:11:00:00:01,ip=10.92.3.150/24,gw=10.92.3.1"
    assert validate(schema, "PUT", CT, {"net0": value})["net0"] == value


@pytest.mark.parametrize("ip", ["dhcp", "manual", "10.92.3.150/24", "10.0.0.1/8"])
def test_net0_ipv4_configurations_pve_accepts(schema: ApiSchema, ip: str) -> None:
    validate(schema, "PUT", CT, {"net0": f"name=eth0,ip={ip}"})


@pytest.mark.parametrize("ip6", ["auto", "dhcp", "manual", "fd00::5/64", "2001:db8::1/128"])
def test_net0_ipv6_configurations_pve_accepts(schema: ApiSchema, ip6: str) -> None:
    validate(schema, "PUT", CT, {"net0": f"name=eth0,ip6={ip6}"})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "name=eth0,ip=10.0.0.300/24",
            "invalid format - format error\n"
            "net0.ip: invalid format - value does not look like a valid ipv4 network configuration",
        ),
        (
            "name=eth0,ip=10.0.0.1/7",
            "invalid format - format error\n"
            "net0.ip: invalid format - value does not look like a valid ipv4 network configuration",
        ),
        (
            "name=eth0,ip6=bogus",
            "invalid format - format error\n"
            "net0.ip6: invalid format - value does not look like a valid ipv6 network configuration",
        ),
        (
            "name=eth0,hwaddr=01:00:5E:00:00:01",
            "invalid format - format error\n"
            "net0.hwaddr: invalid format - value does not look like a valid unicast MAC address",
        ),
        (
            "name=eth0,mtu=10",
            "invalid format - format error\nnet0.mtu: value must have a minimum value of 64",
        ),
        ("bridge=vmbr0", f"invalid format - format error\nnet0.name: {MISSING}"),
        ("name=eth0,foo=1", "invalid format - invalid key in comma-separated list property: foo"),
        ("name=eth0,name=eth1", "invalid format - duplicate key in comma-separated list property: name"),
        ("eth0", "invalid format - value without key, but schema does not define a default key"),
        ("name=eth0,ip=", "invalid format - missing key in comma-separated list property"),
    ],
)
def test_bad_net0_is_refused_with_pve_message(schema: ApiSchema, value: str, message: str) -> None:
    assert net_error(schema, value) == message


def test_rootfs_bare_value_goes_to_the_default_key(schema: ApiSchema) -> None:
    route = schema.match("PUT", CT)
    assert route is not None
    fmt = schema.property_format(route, "rootfs")
    assert fmt is not None
    assert parse_property_string("local:8", fmt, "rootfs") == {"volume": "local:8"}
    parsed = parse_property_string("local:100/vm-100-disk-0.raw,size=8G,acl=1", fmt, "rootfs")
    assert parsed == {"volume": "local:100/vm-100-disk-0.raw", "size": "8G", "acl": 1}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("local:8,local:9", "invalid format - duplicate key in comma-separated list property: volume"),
        (
            "volume=local:8,size=8X",
            "invalid format - format error\n"
            "rootfs.size: invalid format - value does not look like a valid disk size: 8X",
        ),
        (
            "local:8,mountoptions=noatime;bogus",
            "invalid format - format error\nrootfs.mountoptions: value does not match the regex pattern",
        ),
        ("size=8G", f"invalid format - format error\nrootfs.volume: {MISSING}"),
    ],
)
def test_bad_rootfs_is_refused(schema: ApiSchema, value: str, message: str) -> None:
    assert errors(schema, "PUT", CT, {"rootfs": value}) == {"rootfs": message}


def test_mount_point_paths(schema: ApiSchema) -> None:
    assert validate(schema, "PUT", CT, {"mp0": "/srv/data,mp=/data,ro=1"})["mp0"] == "/srv/data,mp=/data,ro=1"
    assert errors(schema, "PUT", CT, {"mp0": "local:8,mp=/mnt/../etc"}) == {
        "mp0": "invalid format - format error\n"
        "mp0.mp: invalid format - /mnt/../etc contains illegal character sequences"
    }
    assert errors(schema, "PUT", CT, {"mp0": "local:8"}) == {
        "mp0": f"invalid format - format error\nmp0.mp: {MISSING}"
    }


def test_features_booleans_use_parse_boolean(schema: ApiSchema) -> None:
    route = schema.match("PUT", CT)
    assert route is not None
    fmt = schema.property_format(route, "features")
    assert fmt is not None
    parsed = parse_property_string("nesting=1,keyctl=true,fuse=off", fmt, "features")
    assert parsed == {"nesting": 1, "keyctl": 1, "fuse": 0}
    assert errors(schema, "PUT", CT, {"features": "nesting=maybe"}) == {
        "features": "invalid format - format error\n"
        "features.nesting: type check ('boolean') failed - got 'maybe'"
    }


def test_parse_property_string_raises_parameter_error_keyed_by_name(schema: ApiSchema) -> None:
    route = schema.match("PUT", CT)
    assert route is not None
    fmt = schema.property_format(route, "net0")
    assert fmt is not None
    with pytest.raises(ParameterError) as caught:
        parse_property_string("name=eth0,foo=1", fmt, "net3")
    assert caught.value.errors == {
        "net3": "invalid format - invalid key in comma-separated list property: foo"
    }
    with pytest.raises(ParameterError) as unnamed:
        parse_property_string("ip=dhcp", fmt)
    assert unnamed.value.errors == {"_root": f"invalid format - format error\nname: {MISSING}"}


def test_parse_property_string_coerces_sub_values(schema: ApiSchema) -> None:
    route = schema.match("PUT", CT)
    assert route is not None
    fmt = schema.property_format(route, "net0")
    assert fmt is not None
    parsed = parse_property_string("name=eth0,mtu=1500,rate=12.5,firewall=0,tag=5", fmt, "net0")
    assert parsed == {"name": "eth0", "mtu": 1500, "rate": 12.5, "firewall": 0, "tag": 5}


def test_net0_round_trips_in_pve_order(schema: ApiSchema) -> None:
    route = schema.match("PUT", CT)
    assert route is not None
    fmt = schema.property_format(route, "net0")
    assert fmt is not None
    canonical = "name=eth0,bridge=vmbr0,firewall=1,hwaddr=BC:24:11:2E:90:01,ip=dhcp,ip6=auto,type=veth"
    assert format_property_string(parse_property_string(canonical, fmt, "net0"), fmt) == canonical
    scrambled = {
        "type": "veth",
        "ip": "dhcp",
        "firewall": True,
        "name": "eth0",
        "bridge": "vmbr0",
        "gw": None,
    }
    assert format_property_string(scrambled, fmt) == "name=eth0,bridge=vmbr0,firewall=1,ip=dhcp,type=veth"


def test_rootfs_is_written_with_the_volume_bare_and_sizes_in_units(schema: ApiSchema) -> None:
    route = schema.match("PUT", CT)
    assert route is not None
    fmt = schema.property_format(route, "rootfs")
    assert fmt is not None
    values = {"size": 8 * 1024**3, "acl": True, "volume": "local:100/vm-100-disk-0.raw"}
    assert format_property_string(values, fmt) == "local:100/vm-100-disk-0.raw,acl=1,size=8G"
    text = "local:100/vm-100-disk-0.raw,size=512M"
    assert format_property_string(parse_property_string(text, fmt, "rootfs"), fmt) == text


def test_key_alias_round_trip_on_qemu_net(schema: ApiSchema) -> None:
    route = schema.match("PUT", "/nodes/pve1/qemu/100/config")
    assert route is not None
    fmt = schema.property_format(route, "net0")
    assert fmt is not None
    text = "virtio=BC:24:11:00:00:01,bridge=vmbr0,firewall=1"
    parsed = parse_property_string(text, fmt, "net0")
    assert parsed == {"model": "virtio", "macaddr": "BC:24:11:00:00:01", "bridge": "vmbr0", "firewall": 1}
    assert format_property_string(parsed, fmt) == text


def test_format_property_string_refuses_what_pve_would_not_print(schema: ApiSchema) -> None:
    route = schema.match("PUT", CT)
    assert route is not None
    fmt = schema.property_format(route, "net0")
    assert fmt is not None
    with pytest.raises(ParameterError) as comma:
        format_property_string({"name": "eth0", "trunks": "1,2"}, fmt)
    assert comma.value.errors == {"trunks": "value does not match the regex pattern"}
    with pytest.raises(ParameterError) as unknown:
        format_property_string({"name": "eth0", "bogus": "1"}, fmt)
    assert unknown.value.errors == {"bogus": "invalid key 'bogus'"}
    with pytest.raises(ParameterError) as missing:
        format_property_string({"bridge": "vmbr0"}, fmt)
    assert missing.value.errors == {"name": MISSING}


def test_format_property_string_refuses_commas_in_values() -> None:
    fmt = {"comment": {"type": "string", "optional": 1}}
    with pytest.raises(ParameterError) as caught:
        format_property_string({"comment": "a,b"}, fmt)
    assert caught.value.errors == {"comment": "illegal value with commas for comment"}


@pytest.mark.parametrize(
    ("text", "size"),
    [("8G", 8 * 1024**3), ("512M", 512 * 1024**2), ("1.5T", int(1.5 * 1024**4)), ("100", 100), ("4K", 4096)],
)
def test_disk_sizes_parse_and_format_like_pve(text: str, size: int) -> None:
    assert parse_size(text) == size
    assert format_size(size) == ("1536G" if text == "1.5T" else text)


def test_parse_size_refuses_non_sizes() -> None:
    assert parse_size("8X") is None
    assert parse_size("-1G") is None


def test_split_list_like_pve_tools() -> None:
    assert split_list("a, b;c  d") == ["a", "b", "c", "d"]
    assert split_list("a\0b c\0") == ["a", "b c"]
    assert split_list("") == []


# -- Perl regular expressions -------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("(?^:abc)", "abc", True),
        ("(?^i:abc)", "ABC", True),
        ("(?^i:(?^:abc))", "ABC", False),
        (r"\d+", "12a", False),
        (r"\d+", "12", True),
        ("[[:alnum:]]+", "ab1", True),
        ("[[:alnum:]]+", "a-b", False),
        (r"abc\z", "abc", True),
        # m/^$pattern$/ binds the anchors to the outer alternatives, as PVE does.
        ("a|b", "xb", True),
        ("(?:a|b)", "xb", False),
        # Perl's $ also matches before a final newline.
        (r"\d+", "12\n", True),
    ],
)
def test_perl_regex_matches_as_pve_anchors_it(pattern: str, value: str, matches: bool) -> None:
    assert (compile_perl_regex(pattern).search(value) is not None) is matches


def test_perl_flag_groups_translate_to_scoped_python_flags() -> None:
    assert perl_regex_to_python("(?^:x)") == "(?-imsx:x)"
    assert perl_regex_to_python("(?^i:x)") == "(?i-msx:x)"
    assert perl_regex_to_python("[\\(\\)-_]") == "[\\(\\)-_]"


def test_unsupported_perl_escape_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported Perl regex escape"):
        perl_regex_to_python(r"a\Kb")


def _patterns(node: dict[str, Any]) -> set[str]:
    found = {node["pattern"]} if "pattern" in node else set()
    fmt = node.get("format")
    for sub in fmt.values() if isinstance(fmt, dict) else ():
        found |= _patterns(sub)
    if isinstance(node.get("items"), dict):
        found |= _patterns(node["items"])
    return found


def test_every_schema_pattern_compiles(schema: ApiSchema) -> None:
    patterns: set[str] = set()
    for template, method in schema.routes():
        route = schema.match(method, template)
        assert route is not None
        for prop in (route.info["parameters"].get("properties") or {}).values():
            patterns |= _patterns(prop)
    assert len(patterns) > 50
    for pattern in patterns:
        compile_perl_regex(pattern)


# -- named formats ------------------------------------------------------------

PROBED = [
    ("pve-vmid", "100", None),
    ("pve-vmid", "1000000000", "value does not look like a valid VM ID"),
    ("pve-node", "pve-1", None),
    ("pve-node", "-pve", "value does not look like a valid node name"),
    ("pve-storage-id", "local-lvm", None),
    ("pve-configid", "memory", None),
    ("pve-configid-list", "memory, swap;net0", None),
    ("pve-tag-list", "web;db,prod", None),
    ("pve-startup-order", "order=1,up=30,down=60", None),
    ("pve-startup-order", "2", None),
    ("dns-name", "ct1.example.com", None),
    ("address-list", "10.0.0.1 ct1.example.com", None),
    ("address", "bad_name", "value does not look like a valid address: bad_name"),
    ("ipv4", "192.168.1.1", None),
    ("ipv4", "192.168.1.256", "value does not look like a valid IPv4 address"),
    ("ipv6", "fe80::1", None),
    ("ipv6", "fe80:::1", "value does not look like a valid IPv6 address"),
    ("ip", "::ffff:10.0.0.1", None),
    ("CIDR", "10.0.0.0/8", None),
    ("CIDRv6", "fd00::/7", "value does not look like a valid IPv6 CIDR network"),
    ("ipv4mask", "255.255.255.0", None),
    ("ipv4mask", "255.0.255.0", "value does not look like a valid IP netmask"),
    ("mac-addr", "bc:24:11:00:00:01", None),
    ("disk-size", "1.5T", None),
    ("pve-volume-id", "local:vztmpl/debian-12.tar.zst", None),
    ("pve-lxc-mp-string", "/srv/data", None),
    ("pve-lxc-mp-string", "../etc", "../etc contains illegal character sequences"),
    ("pve-lxc-dev-string", "/etc/passwd", "/etc/passwd is not a valid device path"),
    ("lxc-ip-with-ll-iface", "fe80::1%eth0", None),
    ("pve-userid", "root@pam", None),
    ("pve-tokenid", "root@pam!automation", None),
    ("pve-realm", "pve", None),
    ("pve-poolid", "pool-1", None),
    ("email", "ops@example.com", None),
    ("email-opt", "", None),
    ("email-opt", "nope", "value does not look like a valid email address"),
    ("urlencoded", "a%20b", None),
    ("urlencoded", "a b", "invalid urlencoded string: a b"),
    ("pve-task-status-type", "WARNING", None),
    ("pve-ct-timezone", "host", None),
    ("pve-ct-timezone", "Europe/Vienna", None),
    (
        "storage-pair-list",
        "local:local-lvm,1x:nfs",
        "entry '1x:nfs' contains invalid ID - storage ID '1x' contains illegal characters",
    ),
    ("pve-vlan-id-or-range", "10-20", None),
    ("pve-vlan-id-or-range", "20-10", "VLAN range must go from lower to higher tag '20-10'"),
    ("pve-storage-portal-dns", "[fd00::1]:3260", None),
    ("pve-storage-path", "relative/path", "value does not look like a valid absolute path"),
    ("pve-dir-override-list", "iso=isos,backup=dumps/../x", "invalid override 'backup=dumps/../x'"),
]


@pytest.fixture(scope="module")
def probe() -> ApiSchema:
    """A one-route schema with one string parameter per named format."""
    names = {name for name, _value, _message in PROBED}
    properties = {name: {"type": "string", "format": name, "optional": 1} for name in names}
    return ApiSchema([{"path": "/probe", "info": {"POST": {"parameters": {"properties": properties}}}}])


@pytest.mark.parametrize(("name", "value", "message"), PROBED)
def test_named_format(probe: ApiSchema, name: str, value: str, message: str | None) -> None:
    route = probe.match("POST", "/probe")
    assert route is not None
    if message is None:
        assert probe.validate(route, {name: value}) == {name: value}
    else:
        with pytest.raises(ParameterError) as caught:
            probe.validate(route, {name: value})
        assert caught.value.errors == {name: f"invalid format - {message}"}


def test_unknown_named_format_is_accepted_and_listed() -> None:
    fmt = {"when": {"type": "string", "format": "lab-made-up-format"}}
    assert parse_property_string("when=anything", fmt, "x") == {"when": "anything"}
    assert "lab-made-up-format" in UNCHECKED_FORMATS


def test_unchecked_schema_formats_are_listed(schema: ApiSchema) -> None:
    unchecked = schema.unchecked_formats()
    assert "pve-calendar-event" in unchecked
    assert unchecked <= UNCHECKED_FORMATS
    assert not unchecked & KNOWN_FORMATS


def test_lxc_tasks_and_pool_endpoints_use_only_implemented_formats(schema: ApiSchema) -> None:
    names: set[str] = set()
    for template, method in schema.routes():
        if re.match(r"^(/nodes/\{node\}/(lxc(?!.*/firewall)|tasks)|/pools)", template):
            route = schema.match(method, template)
            assert route is not None
            names |= {
                name
                for prop in (route.info["parameters"].get("properties") or {}).values()
                for name in _named_formats(prop)
            }
    # proxmox-remote is a named property-string format whose keys the API dump omits.
    assert names & schema.unchecked_formats() == {"proxmox-remote"}


def _named_formats(prop: dict[str, Any]) -> set[str]:
    fmt = prop.get("format")
    if isinstance(fmt, str):
        return {fmt}
    if isinstance(fmt, dict):
        return {name for sub in fmt.values() for name in _named_formats(sub)}
    return set()

"""Links and forms of an HTML page, read with the standard library's HTML parser."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser
from urllib.parse import urldefrag, urljoin

# Elements whose URL is a page to visit, and those whose URL is a resource the page loads.
_PAGE_LINKS = {("a", "href"), ("area", "href")}
_RESOURCE_LINKS = {("link", "href"), ("script", "src"), ("img", "src"), ("source", "src")}
_NOT_SUBMITTED = {"submit", "button", "reset", "image", "file"}


@dataclass
class FormField:
    name: str
    kind: str
    value: str = ""
    required: bool = False

    @property
    def visible(self) -> bool:
        return self.kind != "hidden"


@dataclass
class Form:
    """A form as a browser would submit it: method, absolute action, fields with defaults."""

    method: str
    action: str
    fields: list[FormField] = field(default_factory=list)

    @property
    def has_required_input(self) -> bool:
        return any(f.required and f.visible for f in self.fields)

    def defaults(self) -> dict[str, str]:
        """What a user submitting the form unchanged would send."""
        return {f.name: f.value for f in self.fields if f.name}

    def empty_submission(self) -> dict[str, str]:
        """Hidden fields (CSRF token, `next`) as rendered; every visible field left empty."""
        return {f.name: (f.value if not f.visible else "") for f in self.fields if f.name}

    def signature(self) -> tuple[str, str, tuple[str, ...]]:
        return self.method, self.action, tuple(sorted(f.name for f in self.fields))


@dataclass
class Page:
    links: list[str] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)
    forms: list[Form] = field(default_factory=list)


class _PageParser(HTMLParser):
    def __init__(self, url: str) -> None:
        super().__init__(convert_charrefs=True)
        self.base = url
        self.page = Page()
        self._form: Form | None = None
        self._select: FormField | None = None
        self._select_options = 0
        self._textarea: FormField | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "base" and values.get("href"):
            self.base = urljoin(self.base, values["href"])
        for element, attribute in _PAGE_LINKS | _RESOURCE_LINKS:
            if tag == element and values.get(attribute):
                target = self._absolute(values[attribute])
                if target:
                    bucket = self.page.links if (element, attribute) in _PAGE_LINKS else self.page.resources
                    bucket.append(target)
        if tag == "form":
            method = (values.get("method") or "get").lower()
            self._form = Form(method=method, action=self._absolute(values.get("action", "")) or self.base)
            self.page.forms.append(self._form)
        elif self._form is not None:
            self._form_field(tag, values)

    def _form_field(self, tag: str, values: dict[str, str]) -> None:
        if self._form is None:
            return
        required = "required" in values
        if tag == "input":
            kind = values.get("type", "text").lower()
            if kind in _NOT_SUBMITTED or (kind in {"checkbox", "radio"} and "checked" not in values):
                # Not sent by a browser (unchecked boxes) but still a field the user must fill.
                if required:
                    self._form.fields.append(FormField(values.get("name", ""), kind, "", True))
                return
            value = values.get("value", "")
            self._form.fields.append(FormField(values.get("name", ""), kind, value, required))
        elif tag == "select":
            self._select = FormField(values.get("name", ""), "select", "", required)
            self._select_options = 0
            self._form.fields.append(self._select)
        elif tag == "option" and self._select is not None:
            # A browser sends the selected option, else the first one.
            if "selected" in values or self._select_options == 0:
                self._select.value = values.get("value", "")
            self._select_options += 1
        elif tag == "textarea":
            self._textarea = FormField(values.get("name", ""), "textarea", "", required)
            self._form.fields.append(self._textarea)

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea.value += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None

    def _absolute(self, reference: str) -> str:
        reference = reference.strip()
        if not reference or reference.startswith(("javascript:", "mailto:", "tel:", "data:", "#")):
            return ""
        return urldefrag(urljoin(self.base, reference))[0]


def parse_page(html: str, url: str) -> Page:
    """Links, resources and forms of `html`, with URLs made absolute against `url`."""
    parser = _PageParser(url)
    parser.feed(html)
    parser.close()
    return parser.page

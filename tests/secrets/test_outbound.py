"""Outbound requests that cannot be aimed inward (workers.training.outbound): against listeners this
test starts on 127.0.0.1 that record every connection, with the administrator's allow-list off (nothing
arrives, on the forms and at connect time in the training layer) and on (they work)."""

from __future__ import annotations

import re
import socket
import threading

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from apps.jobs.models import Job
from workers.training import outbound
from workers.training.judge import Judge
from workers.training.synthetic.teacher import Teacher, TeacherError

pytestmark = pytest.mark.django_db


def hostile(port: int) -> list[tuple[str, str]]:
    """(URL, what the refusal says): every one aimed at the recording listener where it can be."""
    return [
        ("http://169.254.169.254/latest/meta-data/", "never requested"),
        ("file:///etc/passwd", "Only http:// and https://"),
        ("ftp://127.0.0.1/v1", "Only http:// and https://"),
        ("gopher://127.0.0.1:70/_", "Only http:// and https://"),
        (f"http://127.1:{port}/v1", "private or loopback"),
        (f"http://[::1]:{port}/v1", "private or loopback"),
        (f"http://2130706433:{port}/v1", "private or loopback"),
        (f"http://localhost:{port}/v1", "private or loopback"),
        (f"http://127.0.0.1:{port}/v1", "private or loopback"),
        (f"http://user:pass@127.0.0.1:{port}/v1", "user name or password"),
        (f"http://127.0.0.1:{port}/steal#", "#fragment"),
        (f"http://0.0.0.0:{port}/v1", "never requested"),
    ]


def _generation(url: str) -> dict[str, object]:
    return {"technique": "sft", "description": "Reverse the letters of a word.", "rows": 3,
            "teacher": "url", "teacher_url": url, "teacher_model": "teacher"}  # fmt: skip


def test_with_the_allow_list_off_every_hostile_teacher_url_is_refused_on_the_form_and_nothing_arrives(
    client, alice, alice_project, recorder, allow_list_off
):
    client.force_login(alice)
    for url, message in hostile(recorder.port):
        page = client.post(
            reverse("generation-new", args=[alice_project.pk]), _generation(url)
        ).content.decode()
        assert message in page, url
    assert not Job.objects.exists()
    assert not recorder.received_anything


def test_with_the_allow_list_off_the_evaluation_and_rlaif_judge_urls_are_refused(
    alice_project, recorder, allow_list_off
):
    from apps.evaluations.views import EvaluationForm
    from apps.jobs import wizard

    for url, message in hostile(recorder.port):
        form = EvaluationForm(
            {"judge_url": url, "judge_model": "judge"}, jobs=[], datasets=[], keys=[("", "No key")]
        )
        assert not form.is_valid() and message in " ".join(map(str, form.errors["judge_url"])), url
        params = wizard.params_form_class("rlaif")({"p-judge_url": url, "p-judge_model": "judge"}, prefix="p")
        assert params.is_valid(), params.errors
        with pytest.raises(ValidationError, match=re.escape(message)):
            wizard.clean_params("rlaif", params)
    assert not recorder.received_anything


def test_the_training_layers_judge_and_teacher_refuse_loopback_at_connect_time_and_nothing_arrives(
    recorder, allow_list_off
):
    # The forms let none of these through; here the training layer is asked directly, as a spec written
    # by hand or a name that resolved elsewhere when the form checked it would.
    for base in (recorder.url, f"http://localhost:{recorder.port}/v1", f"http://127.1:{recorder.port}/v1"):
        judge = Judge(base, "judge", "Be right.", api_key="sk-worker", fail_fast=False)
        assert judge(["hi"], ["hello"]) == [0.0]
        assert "private or loopback" in judge.failures[0]
        verdict = judge.review("hi", "hello")
        assert verdict.value is None and "private or loopback" in verdict.problem
        with pytest.raises(TeacherError, match="private or loopback"):
            Teacher.from_spec({"base_url": base, "model": "teacher"}).ask([{"role": "user", "content": "hi"}])
    assert not recorder.received_anything


def test_with_the_allow_list_on_the_judge_and_the_teacher_reach_the_listener(
    recorder, allow_list_off, monkeypatch
):
    monkeypatch.setenv("ATELIER_OUTBOUND_ALLOW", f"127.0.0.1:{recorder.port}")
    assert Judge(recorder.url, "judge", "Be right.")(["hi"], ["hello"]) == [0.7]
    assert (
        Teacher.from_spec({"base_url": recorder.url, "model": "t"}).ask([{"role": "user", "content": "hi"}])
        == "7"
    )
    assert [h["path"] for h in recorder.hits] == ["/v1/chat/completions"] * 2


def test_with_the_allow_list_on_the_form_accepts_a_loopback_judge(alice_project, recorder, settings):
    from apps.evaluations.views import EvaluationForm

    settings.OUTBOUND_ALLOW = "127.0.0.0/8"
    form = EvaluationForm(
        {"judge_url": recorder.url, "judge_model": "judge"}, jobs=[], datasets=[], keys=[("", "No key")]
    )
    form.is_valid()
    assert "judge_url" not in form.errors


def test_metadata_and_link_local_addresses_are_refused_even_when_an_administrator_allows_everything():
    policy = outbound.Policy.parse("0.0.0.0/0,::/0")
    for url in ("http://169.254.169.254/", "http://[fe80::1]/", "http://224.0.0.1/", "http://255.255.255.255/",
                "http://[::ffff:169.254.169.254]/", "http://0.0.0.0/"):  # fmt: skip
        with pytest.raises(outbound.OutboundRefused, match="never requested"):
            outbound.check_url_addresses(url, policy)
    assert outbound.check_url_addresses("http://10.1.2.3/v1", policy) == "http://10.1.2.3/v1"


def test_the_gateway_is_allowed_by_default_and_nothing_else_on_loopback():
    policy = outbound.Policy.parse("", "http://127.0.0.1:8000/v1")
    assert outbound.check_url_addresses("http://127.0.0.1:8000/v1", policy)
    with pytest.raises(outbound.OutboundRefused, match="private or loopback"):
        outbound.check_url_addresses("http://127.0.0.1:5000/v1", policy)  # MLflow's port
    assert outbound.Policy.parse(policy.as_text()) == policy  # what a training process receives


def test_a_redirect_is_not_followed(allow_list_off, monkeypatch):
    # A server on the allow-list answering 302 to an address that is not: the client stops there.
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Redirect(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            self.send_response(302)
            self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = HTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.handle_request, daemon=True).start()
    monkeypatch.setenv("ATELIER_OUTBOUND_ALLOW", f"127.0.0.1:{server.server_address[1]}")
    judge = Judge(f"http://127.0.0.1:{server.server_address[1]}/v1", "judge", "Be right.", fail_fast=False)
    assert judge(["hi"], ["hello"]) == [0.0] and "302" in judge.failures[0]
    server.server_close()


def test_the_teacher_check_says_the_same_for_a_closed_port_a_non_http_service_and_a_non_openai_server(
    settings,
):
    from http.server import BaseHTTPRequestHandler, HTTPServer

    from apps.synthetic.probe import teacher_problem

    settings.OUTBOUND_ALLOW = "127.0.0.0/8"
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        closed_port = closed.getsockname()[1]  # bound, never listening: connections are refused

    garbage = socket.socket()
    garbage.bind(("127.0.0.1", 0))
    garbage.listen()

    def talk() -> None:
        conn, _ = garbage.accept()
        conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
        conn.close()

    threading.Thread(target=talk, daemon=True).start()

    class Html(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            body = b"<html>MLflow</html>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    html = HTTPServer(("127.0.0.1", 0), Html)
    threading.Thread(target=html.handle_request, daemon=True).start()
    answers = {
        port: teacher_problem(f"http://127.0.0.1:{port}/v1", timeout=3)
        for port in (closed_port, garbage.getsockname()[1], html.server_address[1])
    }
    garbage.close()
    html.server_close()
    texts = {a.replace(str(p), "PORT") for p, a in answers.items() if a}
    assert len(answers) == 3 and all(answers.values()) and len(texts) == 1, answers

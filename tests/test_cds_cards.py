"""CDS Hooks cards hardened (issue 22, item 10): chart text cannot become Markdown links or HTML
and is bounded, links come from the configured address and never from the Host header,
research use is said in words with indicator "info", summaries stay under 140 characters."""
from __future__ import annotations

from test_cds_hooks import SERVICE, example_call, observations, only_card, plain

HOSTILE = ("[Open the new protocol](https://attacker.example/login) <img src=x onerror=alert(1)> "
           "<b>bold</b> www.attacker.example ") * 40  # about 5,000 characters


def test_chart_text_in_the_detail_is_escaped_and_bounded(client):
    call = example_call()
    blasts = observations(call)[0]
    blasts.pop("valueQuantity")
    blasts["dataAbsentReason"] = {"text": HOSTILE}
    card = only_card(client.post(SERVICE, json=call))
    detail = card["detail"]
    assert "](" not in detail and "<img" not in detail and "<b>" not in detail
    assert "https://attacker" not in detail and "www.attacker" not in detail
    assert "Open the new protocol" in plain(detail)  # shown as text
    assert len(detail) < 1500  # not 5,000 characters of chart text


def test_links_come_from_the_configured_address_not_the_host_header(client):
    answer = client.post(SERVICE, json=example_call(), headers={"Host": "attacker.example"})
    card = only_card(answer)
    assert card["links"][0]["url"].startswith("http://localhost/r/")
    assert card["source"]["url"] == "http://localhost/about"
    assert "attacker" not in str(card)


def test_without_a_configured_address_the_card_has_no_links(trained_bundle_path):
    from calculator import create_app

    app = create_app({"BUNDLE_PATH": str(trained_bundle_path), "TESTING": True})
    card = only_card(app.test_client().post(SERVICE, json=example_call(),
                                            headers={"Host": "attacker.example"}))
    assert card["links"] == [] and "url" not in card["source"]
    assert card["summary"].startswith("CR ")


def test_research_use_is_said_in_words_and_the_indicator_is_info(client):
    card = only_card(client.post(SERVICE, json=example_call()))
    assert card["indicator"] == "info"
    assert card["summary"].endswith("| research use only")
    assert "Research use only" in plain(card["detail"])


def test_a_summary_is_under_140_characters():
    """CDS Hooks: "<140 characters". Before: exactly 140 was allowed."""
    from calculator.interop.cds_hooks import _cut

    assert len(_cut("x" * 140)) == 139 and _cut("x" * 140).endswith("...")
    assert _cut("x" * 139) == "x" * 139

"""The pages' texts as message ids, and their translation as a page is served
(app/i18n/html.py)."""

from __future__ import annotations

from app.i18n.extraction import STATIC_DIR
from app.i18n.html import message_ids, translate_page

PAGE = """<!doctype html>
<html lang="en">
<head><title>Sign in — Pledgeline</title>
<script type="module" src="/static/x.js"></script>
<style>p::before { content: "Sign in"; }</style></head>
<body>
  <!-- Sign in: a comment is not text -->
  <h1>Pledgeline <span>sign in</span></h1>
  <label for="n">Campaign
      number</label>
  <input id="n" placeholder="Your name" title="Sign in" data-x="Sign in">
  <abbr title="Average speed of answer">ASA</abbr>
  <p>R&amp;D &lt;3</p>
  <p>- 42 €</p>
  <kbd translate="no">R <b>Ready</b></kbd><br>
  <button>Sign in</button>
</body>
</html>
"""


def test_every_text_and_described_attribute_is_an_id() -> None:
    assert message_ids(PAGE) == [
        "Sign in — Pledgeline",
        "Pledgeline",
        "sign in",
        "Campaign number",  # whitespace folded
        "Your name",
        "Sign in",
        "Average speed of answer",
        "ASA",
        "R&D <3",  # entities read
        "Sign in",
    ]


def test_the_page_is_translated_in_place() -> None:
    french = translate_page(PAGE, "fr")
    assert "<title>Connexion — Pledgeline</title>" in french
    assert "<button>Se connecter</button>" in french
    assert 'title="Se connecter" data-x="Sign in"' in french
    assert '<abbr title="Délai moyen de réponse">DMR</abbr>' in french
    assert '<label for="n">Numéro de campagne</label>' in french
    # Code, comments, figures and what is marked translate="no" stay as written.
    assert 'content: "Sign in"' in french and "<!-- Sign in: a comment" in french
    assert "<p>- 42 €</p>" in french and "<b>Ready</b>" in french
    # An id the catalogue lacks stays English; English pages are left alone.
    assert "Your name" in french and "R&amp;D &lt;3" in french
    assert translate_page(PAGE, "en") == PAGE


def test_a_translation_is_escaped() -> None:
    french = translate_page('<p>You are signed in</p><p title="Waited">x</p>', "fr")
    assert french == '<p>Vous êtes connecté</p><p title="Attente">x</p>'
    apostrophe = translate_page("<p>Skip to the call</p>", "fr")
    assert apostrophe == "<p>Aller à l&#x27;appel</p>"


def test_every_shipped_page_has_text_to_translate() -> None:
    for path in sorted(STATIC_DIR.glob("*.html")):
        page = path.read_text(encoding="utf-8")
        assert message_ids(page), path.name
        assert translate_page(page, "fr") != page, path.name

"""Replies in French by default, in English on request (app/i18n through the real app):
error messages, validation messages, the pages' ``<html lang>``, the page catalogue,
the exports' headers and the CLI's output."""

from __future__ import annotations

import csv
import io
import re

import openpyxl

from app.auth.service import Role
from tests.conftest import Hotline, setup_campaign
from tests.procs import run_cli
from tests.users import user_with_token

EN = {"Accept-Language": "en"}
FR = {"Accept-Language": "fr-FR,fr;q=0.9"}


async def test_refusals_are_french_by_default_and_english_on_request(hotline: Hotline) -> None:
    http = hotline.http
    french = await http.get("/queues/999999")
    english = await http.get("/queues/999999", headers=EN)
    assert french.status_code == english.status_code == 404
    assert french.json() == {
        "code": "not_found",
        "message": "file 999999 introuvable",
        "field": "queue_id",
    }
    # code and field are the contract: only the message changes.
    assert english.json() == {**french.json(), "message": "queue 999999 not found"}

    anonymous = {"Authorization": ""}
    r = await http.get("/users", headers=anonymous)
    assert (r.status_code, r.json()["message"]) == (401, "connectez-vous d'abord")
    r = await http.get("/users", headers={**anonymous, **EN})
    assert (r.status_code, r.json()["message"]) == (401, "log in first")

    r = await http.post(
        "/campaigns", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.json()["message"] == "le corps de la requête n'est pas du JSON valide"
    r = await http.get("/no/such/path")
    assert (r.json()["code"], r.json()["message"]) == ("not_found", "Introuvable")
    r = await http.get("/no/such/path", headers=EN)
    assert r.json()["message"] == "Not Found"


async def test_validation_and_card_refusals_in_both_languages(hotline: Hotline) -> None:
    setup = await setup_campaign(hotline, agents=0)
    http = hotline.http
    body = {"dialled_numbers": ["+33800000009"]}
    r = await http.post("/campaigns", json=body)
    assert r.status_code == 422
    assert r.json() == {"code": "invalid", "message": "name: Champ obligatoire", "field": "name"}
    r = await http.post("/campaigns", json=body, headers=EN)
    assert r.json() == {"code": "invalid", "message": "name: Field required", "field": "name"}

    r = await http.patch(f"/campaigns/{setup['campaign_id']}", json={"pledge_min_minor": -5})
    assert r.status_code == 422 and r.json()["field"] == "pledge_min_minor"
    assert "Doit être supérieur" in r.json()["message"]

    card = {"closed_message": "card 4111 1111 1111 1111"}
    r = await http.patch(f"/campaigns/{setup['campaign_id']}", json=card)
    assert (r.status_code, r.json()["code"]) == (422, "card_number")
    assert r.json()["message"].startswith("cela ressemble à des données de carte bancaire")
    r = await http.patch(f"/campaigns/{setup['campaign_id']}", json=card, headers=EN)
    assert r.json()["message"].startswith("this looks like payment card data")


async def test_user_setting_beats_accept_language_beats_the_campaign(hotline: Hotline) -> None:
    http = hotline.http
    setup = await setup_campaign(hotline, agents=0, campaign={"language": "en"})
    campaign = await http.get(f"/campaigns/{setup['campaign_id']}")
    assert campaign.json()["language"] == "en"
    user_id, token = await user_with_token(
        hotline.db,
        username="sup-lang",
        role=Role.SUPERVISOR,
        secret="long-enough-secret",
        campaign_id=setup["campaign_id"],
    )
    supervisor = {"Authorization": f"Bearer {token}"}

    async def message(**headers: str) -> str:
        r = await http.get(f"/queues/{setup['queue_id']}00", headers={**supervisor, **headers})
        assert r.status_code == 404, r.text
        return str(r.json()["message"])

    english = f"queue {setup['queue_id']}00 not found"
    french = f"file {setup['queue_id']}00 introuvable"
    assert await message() == english  # the campaign's default
    assert await message(**FR) == french  # the browser's beats it
    me = await http.get("/auth/me", headers=supervisor)
    assert me.json()["language"] is None

    r = await http.patch(f"/users/{user_id}", json={"language": "fr"})
    assert r.status_code == 200 and r.json()["language"] == "fr"
    assert await message(**EN) == french  # the user's own setting beats the browser
    r = await http.patch(f"/users/{user_id}", json={"language": "de"})
    assert (r.status_code, r.json()["field"]) == (422, "language")
    r = await http.patch(f"/users/{user_id}", json={"language": None})
    assert r.status_code == 200 and r.json()["language"] is None
    assert await message(**EN) == english
    assert await message() == english


async def test_pages_carry_the_negotiated_language(hotline: Hotline) -> None:
    for path in ("/login", "/board"):
        french = await hotline.http.get(path)
        assert '<html lang="fr">' in french.text and french.headers["content-language"] == "fr"
        english = await hotline.http.get(path, headers={"Accept-Language": "en-GB,fr;q=0.5"})
        assert '<html lang="en">' in english.text
        assert "Accept-Language" in english.headers["vary"]
        assert "default-src 'self'" in english.headers["content-security-policy"]


def scripts(page: str) -> list[str]:
    return re.findall(r"<script[^>]*>", page)


async def test_pages_are_served_in_french_unless_asked(hotline: Hotline) -> None:
    pages = {
        "/": "Écran bénévole",
        "/login": "Se connecter",
        "/agent": "Raccrocher",
        "/supervisor": "Bénévoles d&#x27;astreinte",
        "/organiser": "Exporter les promesses",
        "/board": "Promis à ce jour",
    }
    english = {"/": "Volunteer screen", "/login": "Sign in", "/agent": "Hang up"}
    for path, text in pages.items():
        french = await hotline.http.get(path)
        assert french.status_code == 200 and text in french.text, path
        # The scripts are served as written: only the page's texts change.
        english_page = await hotline.http.get(path, headers={"Accept-Language": "en"})
        assert scripts(french.text) == scripts(english_page.text), path
    for path, text in english.items():
        r = await hotline.http.get(path, headers={"Accept-Language": "en"})
        assert text in r.text and pages[path] not in r.text, path
    login = (await hotline.http.get("/login")).text
    assert ">Sign in<" not in login and 'aria-describedby="secret-hint"' in login


async def test_the_page_catalogue_is_public_and_cacheable(hotline: Hotline) -> None:
    r = await hotline.http.get("/i18n/fr", headers={"Authorization": ""})
    assert r.status_code == 200
    assert r.headers["cache-control"] == "public, max-age=3600"
    body = r.json()
    assert body["language"] == "fr"
    assert body["messages"]["log in first"] == "connectez-vous d'abord"
    assert body["formats"]["group"] == "\u202f" and body["formats"]["decimal"] == ","
    english = (await hotline.http.get("/i18n/en")).json()
    assert english["formats"]["decimal"] == "."
    r = await hotline.http.get("/i18n/de")
    assert (r.status_code, r.json()["code"], r.json()["field"]) == (404, "not_found", "language")


async def test_export_headers_follow_the_language(hotline: Hotline) -> None:
    setup = await setup_campaign(hotline, agents=0)
    url = f"/pledges/export.csv?campaign_id={setup['campaign_id']}"
    french = next(csv.reader(io.StringIO((await hotline.http.get(url)).text)))
    english = next(csv.reader(io.StringIO((await hotline.http.get(url, headers=EN)).text)))
    assert french[:4] == ["id_promesse", "référence", "créée_le_utc", "statut"]
    assert english[:4] == ["pledge_id", "reference", "created_at_utc", "status"]
    assert len(french) == len(english) == len(set(french))
    xlsx = await hotline.http.get(f"/pledges/export.xlsx?campaign_id={setup['campaign_id']}")
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx.content), read_only=True).worksheets[0]
    assert list(next(sheet.iter_rows(values_only=True))) == french


async def test_the_command_line_speaks_french_unless_told(hotline: Hotline) -> None:
    url = hotline.settings.database_url
    code, out, _ = await run_cli(url, "migrate")
    assert (code, out.strip()) == (0, "base de données à jour")
    code, out, _ = await run_cli(url, "--lang", "en", "migrate")
    assert (code, out.strip()) == (0, "database at head")
    code, _, err = await run_cli(url, "export", "--campaign-id", "999999", "--out", "/dev/null")
    assert code == 2 and "refusé : aucune campagne 999999 (campaign_id)" in err, err

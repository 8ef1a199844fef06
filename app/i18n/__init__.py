"""French first, English second: catalogues, language negotiation and formats.

The catalogues are gettext ``.po`` files under ``locale/{fr,en}/LC_MESSAGES``; the
message ids are the English texts, so an id without an entry reads as English.
"""

from app.i18n.catalogues import DEFAULT_LANGUAGE, LANGUAGES, N_, Message, translate
from app.i18n.negotiation import negotiate

__all__ = ["DEFAULT_LANGUAGE", "LANGUAGES", "N_", "Message", "negotiate", "translate"]

"""Container names and IDs as Docker makes them: 64 hex IDs, ``adjective_surname`` names."""

from __future__ import annotations

import os
import re

from ..errors import InvalidArgument

NAME_RE = re.compile(r"^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$")

ADJECTIVES = """admiring adoring affectionate agitated amazing angry awesome beautiful blissful bold
boring brave busy charming clever compassionate competent condescending confident cool cranky
crazy dazzling determined distracted dreamy eager ecstatic elastic elated elegant eloquent epic
exciting fervent festive flamboyant focused friendly frosty funny gallant gifted goofy gracious
great happy hardcore heuristic hopeful hungry infallible inspiring intelligent interesting jolly
jovial keen kind laughing loving lucid magical modest musing mystifying naughty nervous nice
nifty nostalgic objective optimistic peaceful pedantic pensive practical priceless quirky quizzical
recursing relaxed reverent romantic sad serene sharp silly sleepy stoic strange stupefied
suspicious sweet tender thirsty trusting unruffled upbeat vibrant vigilant vigorous wizardly
wonderful xenodochial youthful zealous zen""".split()

# Shipwrights, harbour-builders and sailors, for a project named after a shipyard.
SURNAMES = """archimedes bernoulli brunel chapman cousteau drake eriksson froude gama hudson
harrison humboldt magellan mercator nansen pytheas shackleton tasman tsiolkovsky vancouver
vasa zheng cook bougainville cabot columbus dampier flinders franklin heyerdahl kidd lapérouse
maury nelson parry ross scott smeaton telford watt""".split()
SURNAMES = [s for s in SURNAMES if s.isascii()]


def new_id() -> str:
    return os.urandom(32).hex()  # (the secrets module costs ~7 ms of start-up for the same bytes)


def _pick(seq: list[str]) -> str:
    return seq[int.from_bytes(os.urandom(4), "big") % len(seq)]


def random_name(taken: set[str]) -> str:
    for attempt in range(100):
        name = f"{_pick(ADJECTIVES)}_{_pick(SURNAMES)}"
        if attempt > 10:
            name += str(os.urandom(1)[0] % 10)
        if name not in taken:
            return name
    return "c_" + os.urandom(6).hex()


def check_name(name: str) -> str:
    """A user-given name, without its leading slash; Docker's error when it is malformed."""
    if not NAME_RE.match(name):
        raise InvalidArgument(f'Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed')
    return name.lstrip("/")

"""The list fragments the admin pages load with htmx, all written with the ``rows_table`` and
``pager`` macros: the table with its headers, the empty state, the "More" row that loads the
next page in place, and the first/next links of the filtered lists, followed to their end."""

import re

import pytest


@pytest.fixture
async def admin(api):
    return await api.headers("admin", "alice")


async def fragment(api, headers, url):
    response = await api.client.get(url, headers=headers)
    text = await response.text()
    assert response.status == 200, text
    return text


def attribute(text, name):
    values = re.findall(rf'{name}="([^"]*)"', text)
    assert len(values) == 1, (name, values)
    return values[0].replace("&amp;", "&")


@pytest.mark.parametrize(
    ("url", "empty"),
    [
        ("/settings/trunks/rows", "Aucun trunk pour l’instant."),
        ("/settings/dids/rows", "Aucune SDA pour l’instant."),
        ("/settings/queues/rows", "Aucune file d’attente."),
        ("/agents/phones/rows", "Aucun poste pour le moment."),
        ("/settings/voicemail/rows", "Aucune messagerie vocale pour le moment."),
        ("/agents/groups/rows", "Aucun groupe ne correspond."),
    ],
)
async def test_an_empty_list_is_the_empty_state(api, admin, url, empty):
    text = await fragment(api, admin, url)
    assert 'data-state="empty"' in text and "<table" not in text
    assert empty in text


async def test_a_long_list_loads_its_next_page_in_place(api, admin):
    pool = api.runtime.database.pool
    await pool.execute(
        "INSERT INTO queues (name) "
        "SELECT 'q' || lpad(n::text, 3, '0') FROM generate_series(1, 101) n"
    )
    first = await fragment(api, admin, "/settings/queues/rows")
    headers = re.findall(r'<th scope="col">([^<]*)</th>', first)
    assert headers == [
        "Nom",
        "Libellé",
        "Stratégie",
        "Membres",
        "Attente max.",
        "Flux de débordement",
    ]
    assert first.count('data-testid="queue-q') == 100 and 'data-testid="queue-q101"' not in first
    more = attribute(first, "hx-get")
    assert more == "/settings/queues/rows?after=q100"
    assert 'colspan="6"' in first and 'hx-target="closest tr"' in first
    last = await fragment(api, admin, more)
    assert 'data-testid="queue-q101"' in last and "hx-get" not in last


async def test_a_filtered_list_pages_with_first_and_next_links(api, admin):
    pool = api.runtime.database.pool
    await pool.execute(
        "INSERT INTO groups (name) SELECT 'team ' || lpad(n::text, 2, '0') "
        "FROM generate_series(1, 51) n"
    )
    first = await fragment(api, admin, "/agents/groups/rows?q=team")
    assert first.count('data-testid="group-row"') == 50 and 'data-testid="group-table"' in first
    assert "Première page" not in first
    following = re.search(r'<a href="#" hx-get="([^"]*)" hx-target="#group-rows"', first)
    assert following is not None and "q=team" in following[1] and "cursor=" in following[1]
    second = await fragment(api, admin, following[1].replace("&amp;", "&"))
    assert second.count('data-testid="group-row"') == 1 and ">team 51<" in second
    assert 'data-testid="next-page"' not in second
    back = re.search(r'<a href="#" hx-get="([^"]*)" hx-target="#group-rows">Première page', second)
    assert back is not None and back[1] == "/agents/groups/rows?q=team"


async def test_a_bad_filter_is_the_error_state_in_the_list(api, admin):
    response = await api.client.get("/agents/users/rows?role=king", headers=admin)
    text = await response.text()
    assert response.status == 400
    assert 'data-state="error"' in text and 'href="/agents/users"' in text
    assert "<table" not in text and "Première page" not in text

"""``lcefr gallery add|list|remove``: enrolled people in one SQLite file, pinned to their model."""
from __future__ import annotations

import click

from lcefr.cli._common import CliError, db_option, echo_json, format_table, json_option, min_face_option, no_align_option

__all__ = ["gallery"]


@click.group("gallery")
def gallery():
    """A gallery of enrolled people in one SQLite file, pinned to the model that embedded them."""


@gallery.command("add")
@db_option
@click.argument("name")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--model", help="Model (file or registry name). Required for the first add; later adds reuse "
                              "the gallery's model and refuse a different one.")
@no_align_option
@min_face_option
@json_option
def gallery_add(db, name, images, model, no_align, min_face, as_json):
    """Enrol IMAGES of person NAME (one transaction: all images or none)."""
    from lcefr.face.recognize import EnrolError, enrol

    try:
        report = enrol(db=db, name=name, images=images, model=model, no_align=no_align, min_face=min_face)
    except EnrolError as err:
        raise CliError(str(err)) from None
    if as_json:
        echo_json(report)
        return
    click.echo(f"added {report['added']} image(s) of {report['name']} to {db} ({report['people']} people, "
               f"{report['embeddings']} embeddings)")


@gallery.command("list")
@db_option
@json_option
def gallery_list(db, as_json):
    """People in the gallery and how many images each."""
    from lcefr.face.gallery import Gallery

    with Gallery.open(db) as g:
        people, meta = g.people(), g.meta()
    if as_json:
        echo_json({"db": db, "model": meta.get("model"), "model_id": meta.get("model_id"),
                   "embedding_size": int(meta["embedding_size"]) if meta else None,
                   "people": [{"name": n, "images": c} for n, c in people]})
        return
    click.echo(f"model: {meta.get('model', '-')} ({meta.get('model_id', 'empty gallery')})")
    click.echo(format_table(["name", "images"], people))


@gallery.command("remove")
@db_option
@click.argument("name")
@json_option
def gallery_remove(db, name, as_json):
    """Remove every image of person NAME."""
    from lcefr.face.gallery import Gallery

    with Gallery.open(db) as g:
        if name not in dict(g.people()):
            raise CliError(f"no person {name!r} in {db}")
        n = g.remove(name)
    if as_json:
        echo_json({"db": db, "name": name, "removed": n})
        return
    click.echo(f"removed {name} ({n} image(s)) from {db}")

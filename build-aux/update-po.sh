#!/bin/sh
# Regenerate the template from po/POTFILES.in and merge it into every catalog
# (what `meson compile traspaso-update-po` does, without a meson build tree).
set -eu
cd "$(dirname "$0")/.."
pot=$(mktemp --suffix=.pot)
trap 'rm -f "$pot"' EXIT
xgettext --files-from=po/POTFILES.in --directory=. --from-code=UTF-8 \
    --keyword=_ --keyword=gettext_f --keyword=ngettext_f:1,2 --add-comments=Translators \
    --package-name=traspaso --msgid-bugs-address=https://github.com/traspaso/traspaso/issues \
    -o "$pot" 2>/dev/null
for lang in $(grep -v '^#' po/LINGUAS); do
    msgmerge --quiet --update --backup=none --no-fuzzy-matching "po/$lang.po" "$pot"
    printf '%s: ' "$lang"; msgfmt --statistics -o /dev/null "po/$lang.po"
done

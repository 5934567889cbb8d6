#!/usr/bin/env bash
# The official nginx image's template rendering, for the stand-in: every
# /etc/nginx/templates/NAME.template becomes /etc/nginx/conf.d/NAME with only the environment's
# defined variables substituted (nginx's own $variables are left alone).
set -Eeuo pipefail
if [ "$1" = nginx ]; then
    defined=$(printf '${%s} ' $(env | cut -d= -f1))
    for template in /etc/nginx/templates/*.template; do
        [ -f "$template" ] || continue
        output=/etc/nginx/conf.d/$(basename "$template" .template)
        envsubst "$defined" <"$template" >"$output"
        echo "$0: rendered $template to $output"
    done
fi
exec "$@"

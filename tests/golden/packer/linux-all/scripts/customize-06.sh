#!/bin/sh -e
echo '{{ .Path }}' {{x}}
echo done

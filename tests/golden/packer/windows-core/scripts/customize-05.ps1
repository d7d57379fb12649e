'{{0}} literal braces' -f 1

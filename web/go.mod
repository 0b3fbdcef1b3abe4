module github.com/sagasuite/sagasuite/web

go 1.26.0

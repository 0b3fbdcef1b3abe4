module github.com/sagasuite/sagasuite/tools

go 1.26

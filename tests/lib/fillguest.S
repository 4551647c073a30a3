/* fillguest.S - a multiboot guest for the libvirt tests (tests/lib/libvirt.py): QEMU loads
 * it with -kernel; it fills all RAM above 2 MiB with xorshift32 bytes seeded from the TSC
 * (mem_upper from the multiboot info says where RAM ends), writes "FILL" at physical
 * 0x500 and halts, so a migration moves every page and the RAM stays still. */
	.section .text
	.code32
	.globl _start
	.align 4
mb:	.long 0x1BADB002
	.long 0x00000002
	.long -(0x1BADB002 + 0x00000002)
_start:
	cli
	movl 8(%ebx), %ecx
	shll $10, %ecx
	addl $0x100000, %ecx
	movl $0x200000, %edi
	rdtsc
	orl $1, %eax
1:	movl %eax, %edx
	shll $13, %edx
	xorl %edx, %eax
	movl %eax, %edx
	shrl $17, %edx
	xorl %edx, %eax
	movl %eax, %edx
	shll $5, %edx
	xorl %edx, %eax
	movl %eax, (%edi)
	addl $4, %edi
	cmpl %ecx, %edi
	jb 1b
	movl $0x4c4c4946, 0x500
2:	hlt
	jmp 2b
